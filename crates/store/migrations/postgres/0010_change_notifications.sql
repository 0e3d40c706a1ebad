-- Every write to a table a cached read or a live view shows is announced to the other nodes at
-- commit (NOTIFY is transactional, and repeated payloads in one transaction are sent once), so
-- each node drops only what that table's change can affect. The payload names the table and the
-- writing node (its connections' application_name), which skips its own writes; a log line also
-- names its session, so a page of plans stays cached while other plans' runs log their steps.

CREATE FUNCTION standby_table_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('standby_changes',
        TG_TABLE_NAME || ' ' || COALESCE(NULLIF(current_setting('application_name', true), ''), '-'));
    RETURN NULL;
END $$;

CREATE FUNCTION standby_session_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('standby_changes',
        'session_messages ' || COALESCE(NULLIF(current_setting('application_name', true), ''), '-')
        || ' ' || COALESCE(NEW.session_uid, OLD.session_uid));
    RETURN NULL;
END $$;

CREATE TRIGGER organizations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER backup_servers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON backup_servers
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER plans_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plans
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER plan_targets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plan_targets
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER plan_objects_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plan_objects
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER restore_points_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON restore_points
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER vm_sessions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vm_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER sessions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER session_notes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON session_notes
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
CREATE TRIGGER session_messages_logged AFTER INSERT OR UPDATE OR DELETE ON session_messages
    FOR EACH ROW EXECUTE FUNCTION standby_session_logged();
CREATE TRIGGER session_messages_truncated AFTER TRUNCATE ON session_messages
    FOR EACH STATEMENT EXECUTE FUNCTION standby_table_changed();
