/**
 * Tokenization with the bundle's Hugging Face tokenizer.json. Padding is the batcher's job,
 * so the tokenizer never pads; it truncates at the bundle's max_tokens and says when it did.
 */
import { Tokenizer } from '@anush008/tokenizers';

export interface TokenizedText {
  readonly ids: readonly number[];
  readonly typeIds: readonly number[];
  /** True when the text was longer than max_tokens and lost its tail. */
  readonly truncated: boolean;
}

export interface TextTokenizer {
  readonly maxTokens: number;
  readonly padId: number;
  tokenize(texts: readonly string[]): Promise<TokenizedText[]>;
}

export function createTokenizer(tokenizerPath: string, maxTokens: number): TextTokenizer {
  const tokenizer = Tokenizer.fromFile(tokenizerPath);
  tokenizer.setTruncation(maxTokens);
  tokenizer.disablePadding();
  const padId = tokenizer.tokenToId('[PAD]') ?? tokenizer.tokenToId('<pad>') ?? 0;
  return {
    maxTokens,
    padId,
    async tokenize(texts) {
      const encodings = await tokenizer.encodeBatch([...texts]);
      return encodings.map((e) => ({
        ids: e.getIds(),
        typeIds: e.getTypeIds(),
        truncated: e.getOverflowing().length > 0,
      }));
    },
  };
}
