"""The audit of the record: the journal's hash chain checked against signed daily roots
(docs/RECORD.md, "The audit chain")."""
