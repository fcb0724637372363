/** Collection names in bodies and paths. */
import { COLLECTION_NAME_PATTERN } from '../../search/search-service.js';

export const collectionNameSchema = {
  type: 'string',
  pattern: COLLECTION_NAME_PATTERN,
  description: 'Collection name: 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting with . or -',
} as const;

export const collectionParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: collectionNameSchema },
} as const;
