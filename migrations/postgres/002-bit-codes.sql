-- The binary codes as pgvector's bit strings, for a first stage inside PostgreSQL
-- (QEMBED_PG_FIRST_STAGE=exact: ORDER BY Hamming distance `<~>`; =hnsw: an HNSW index with
-- bit_hamming_ops per collection, built at first use). The first code_bits bits of a
-- collection's codes are `substring(binary_bits from 1 for code_bits)`; bytes are packed with
-- the first dimension in the high bit, which is the order of a hex bit-string literal.
ALTER TABLE documents ADD COLUMN binary_bits varbit GENERATED ALWAYS AS (('x' || encode(binary_code, 'hex'))::varbit) STORED;
