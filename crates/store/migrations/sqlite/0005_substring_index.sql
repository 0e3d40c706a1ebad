-- Trigram indexes for `contains` under ignorecase on plan and VM names (FTS5, trigram
-- tokenizer, over the folded columns, case-sensitive because they are folded already). They
-- only narrow: the exact instr() test still runs on every row they return.
--
-- External content: the index holds trigrams and row ids, the text stays in its table. The
-- triggers keep it in step; row ids of these tables are stable because nothing here rewrites
-- them (VACUUM could: rebuild with INSERT INTO <index>(<index>) VALUES ('rebuild') after one).

CREATE VIRTUAL TABLE plan_objects_name_trigram USING fts5(
    name_ci, content = 'plan_objects', content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO plan_objects_name_trigram (plan_objects_name_trigram) VALUES ('rebuild');

CREATE TRIGGER plan_objects_name_trigram_insert AFTER INSERT ON plan_objects BEGIN
    INSERT INTO plan_objects_name_trigram (rowid, name_ci) VALUES (new.rowid, new.name_ci);
END;
CREATE TRIGGER plan_objects_name_trigram_delete AFTER DELETE ON plan_objects BEGIN
    INSERT INTO plan_objects_name_trigram (plan_objects_name_trigram, rowid, name_ci)
        VALUES ('delete', old.rowid, old.name_ci);
END;
CREATE TRIGGER plan_objects_name_trigram_update AFTER UPDATE OF name_ci ON plan_objects BEGIN
    INSERT INTO plan_objects_name_trigram (plan_objects_name_trigram, rowid, name_ci)
        VALUES ('delete', old.rowid, old.name_ci);
    INSERT INTO plan_objects_name_trigram (rowid, name_ci) VALUES (new.rowid, new.name_ci);
END;

CREATE VIRTUAL TABLE plans_name_trigram USING fts5(
    name_ci, content = 'plans', content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO plans_name_trigram (plans_name_trigram) VALUES ('rebuild');

CREATE TRIGGER plans_name_trigram_insert AFTER INSERT ON plans BEGIN
    INSERT INTO plans_name_trigram (rowid, name_ci) VALUES (new.rowid, new.name_ci);
END;
CREATE TRIGGER plans_name_trigram_delete AFTER DELETE ON plans BEGIN
    INSERT INTO plans_name_trigram (plans_name_trigram, rowid, name_ci)
        VALUES ('delete', old.rowid, old.name_ci);
END;
CREATE TRIGGER plans_name_trigram_update AFTER UPDATE OF name_ci ON plans BEGIN
    INSERT INTO plans_name_trigram (plans_name_trigram, rowid, name_ci)
        VALUES ('delete', old.rowid, old.name_ci);
    INSERT INTO plans_name_trigram (rowid, name_ci) VALUES (new.rowid, new.name_ci);
END;
