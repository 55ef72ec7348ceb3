"""Records: data files -> desired contacts (one per email), each value valid for HubSpot.

`sources` (JSONL and CSV readers), `identity` (email normalization), `values` (coercion to
HubSpot property types), `mapping` (a record -> email, properties and audience statuses),
`desired` (the staged, merged desired contacts and their counts), `fieldcheck` (mapped fields
against the files), `replay` (rejects files read back as a source).
"""
