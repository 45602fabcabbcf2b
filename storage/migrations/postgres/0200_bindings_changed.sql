-- Every process answers "is this chat a responder's or a volunteer's?" from memory
-- (storage/bindings_cache.py) and forgets the answers when this NOTIFY (delivered at commit)
-- says the table changed: a /register, an /unregister, the CLI, an erasure.
CREATE FUNCTION bindings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ess_bindings', '');
    RETURN NULL;
END $$;
CREATE TRIGGER bindings_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON bindings
    FOR EACH STATEMENT EXECUTE FUNCTION bindings_changed();
