-- Compact first-stage codes: a collection may index only the first code_bits bits of its
-- documents' binary codes (the bundle's binary_code_bits says which lengths its model was
-- trained for). The stored codes stay full length, so the index can be rebuilt at any length;
-- NULL means the full length (the dimension), as every collection created before this.
ALTER TABLE collections ADD COLUMN code_bits INTEGER;
