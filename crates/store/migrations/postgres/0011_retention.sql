-- The background purge deletes finished jobs, finished ledger operations and answered agent
-- commands past their retention; these indexes find them without a scan.
CREATE INDEX jobs_done ON jobs (state, updated_at);
CREATE INDEX sim_operations_finished ON sim_operations (finished_at);
CREATE INDEX agent_commands_reported ON agent_commands (reported_at);
