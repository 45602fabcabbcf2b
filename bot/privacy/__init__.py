"""PDPA: data subjects and their rights, the record of processing, retention, breaches and
consent (docs/pdpa.md). Storage-agnostic: everything goes through the store ports."""
