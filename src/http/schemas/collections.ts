/** Collection names in bodies and paths. */
import { Type } from 'typebox';
import { COLLECTION_NAME_PATTERN } from '../../search/search-service.js';

export const collectionNameSchema = Type.String({
  pattern: COLLECTION_NAME_PATTERN,
  description: 'Collection name: 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting with . or -',
});

export const collectionParamsSchema = Type.Object({ name: collectionNameSchema });
