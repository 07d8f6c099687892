-- The language of each prediction's tweet (shared/language.py) and whether the model could
-- read it.
--
-- language: the detected ISO 639-1 code ('' when too short to tell); language_confidence: the
-- detector's probability of it; language_status: detected, uncertain or too_short ('' for rows
-- stored before this migration, or from producers that do not detect); reliable: 0 when the
-- tweet was confidently in a language the serving version did not learn (its label is a
-- guess), 1 otherwise, and reliability_note the words the answer said it in ('' for none).
-- The monitor's language mix and the language_shift check read them.
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS language LowCardinality(String);
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS language_confidence Float32;
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS language_status LowCardinality(String);
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS reliable UInt8 DEFAULT 1;
ALTER TABLE {database}.predictions ADD COLUMN IF NOT EXISTS reliability_note LowCardinality(String);
