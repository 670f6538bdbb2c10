// JSON nesting, bounded before anything parses it. connect-node hands a JSON
// request to JSON.parse whole, on the API's one thread, with no depth limit:
// a 3.8 MB "[[[[…" costs ~0.8 s there. This scanner looks at each byte once,
// as the chunks arrive, keeping only the depth and whether it is inside a
// string (and after a backslash), so it can refuse such a body after its
// first maxDepth + 1 brackets. It does not validate JSON: the parser still does.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** Incremental depth check over the UTF-8 bytes of one JSON document. */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(readonly maxDepth: number) {}

  /**
   * Scan the next bytes of the document. Returns false once the document
   * nests deeper than maxDepth (and keeps returning false).
   */
  push(bytes: Uint8Array): boolean {
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    const max = this.maxDepth;
    if (depth > max) return false;
    // UTF-8 continuation bytes are >= 0x80, so none is mistaken for a quote,
    // a backslash or a bracket.
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) inString = false;
      } else if (b === QUOTE) {
        inString = true;
      } else if (b === OPEN_BRACKET || b === OPEN_BRACE) {
        if (++depth > max) break;
      } else if (b === CLOSE_BRACKET || b === CLOSE_BRACE) {
        depth--;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return depth <= max;
  }
}

/** Does this whole JSON document nest deeper than maxDepth? */
export function jsonTooDeep(bytes: Uint8Array, maxDepth: number): boolean {
  return !new JsonDepthScanner(maxDepth).push(bytes);
}

export function jsonTooDeepMessage(maxDepth: number): string {
  return `JSON request nests deeper than the limit of ${maxDepth} levels`;
}
