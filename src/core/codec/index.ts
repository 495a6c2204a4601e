export {
  BATCH_CONTENT_TYPE,
  STRUCTURED_CONTENT_TYPE,
  decodeHttpMessage,
  encodeBatch,
  encodeBinary,
  encodeStructured,
  looksLikeCloudEvent,
} from './http.js';
export type { ContentMode, DecodedMessage, EncodedMessage, HttpHeaders } from './http.js';
export {
  parseBatch,
  parseStructuredEvent,
  serializeBatch,
  serializeStructuredEvent,
} from './json.js';
export { isJsonMediaType, isTextMediaType, mediaTypeEssence } from './media.js';
export { decodeHeaderValue, percentEncodeHeaderValue, tryDecodeHeaderValue } from './percent.js';
export type { HeaderDecodeResult } from './percent.js';
export {
  attributeValueProblem,
  isAbsoluteUri,
  isInt32,
  isRfc3339Timestamp,
  isUriReference,
  isValidAttributeName,
  validateEvent,
  validateEventFields,
} from './validate.js';
export type { FieldNamer } from './validate.js';
