-- Engine v2. Every claim of a job raises its epoch, and every engine write names the epoch it
-- holds: a worker that lost its job (paused, partitioned) has its late writes refused.
ALTER TABLE jobs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- The sim's ledger keeps what it planned for an operation when it was submitted (outcome,
-- message, duration, the replica change), so a node that takes over an operation another one
-- started finishes it exactly as planned, and `executions` counts every submission.
ALTER TABLE sim_operations ADD COLUMN plan TEXT COLLATE "C";
