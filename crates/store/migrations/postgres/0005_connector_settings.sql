-- Engine v2: each backup server's connector has settings of its own (a JSON object, its keys
-- the connector's to define), handed to the connector with every operation on that server.
ALTER TABLE backup_servers ADD COLUMN connector_settings TEXT COLLATE "C" NOT NULL DEFAULT '{}';
