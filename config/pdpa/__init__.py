"""The PDPA data files: the record of processing (processing.yaml)."""
