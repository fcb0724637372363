/** Collection names in bodies and paths. */
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import { COLLECTION_NAME_PATTERN } from '../../search/search-service.js';
import { anyBadValue, withFieldErrors } from './field-errors.js';

export const collectionNameSchema = withFieldErrors(
  Type.String({
    pattern: COLLECTION_NAME_PATTERN,
    description: 'Collection name: 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting with . or -',
  }),
  anyBadValue(errors.invalidCollectionName, 'must be 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting with . or -'),
);

export const collectionParamsSchema = Type.Object({ name: collectionNameSchema });
