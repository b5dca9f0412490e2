// Prints, as JSON, the characters each Rust `char` test of Hugging Face's tokenizers accepts (through the
// pre-tokenizers and normalizers that use them: Digits -> is_numeric, Punctuation -> is_punctuation,
// WhitespaceSplit -> is_whitespace, Whitespace -> regex \\w, StripAccents -> is_combining_mark, Lowercase ->
// to_lowercase). gen_unicode_delta.py compares them with ICU. Needs the npm package "tokenizers".
const t = require('tokenizers');
const all = []; for (let c = 1; c < 0x110000; c++) if (c < 0xD800 || c >= 0xE000) all.push(String.fromCodePoint(c));
const text = all.join('\u0001');  // U+0001: not numeric/punct/space/word
function matched(pt, behaviorRemoved) {
  // chars that end up isolated as single-char pieces (Isolated) or removed (Removed)
  const pieces = pt.preTokenizeString(text);
  const set = new Set();
  if (behaviorRemoved) { const left = new Set(); for (const [p] of pieces) for (const ch of p) left.add(ch.codePointAt(0)); for (const ch of all) if (!left.has(ch.codePointAt(0))) set.add(ch.codePointAt(0)); }
  else for (const [p] of pieces) { const cs = Array.from(p); if (cs.length === 1 && cs[0] !== '\u0001') set.add(cs[0].codePointAt(0)); }
  return [...set];
}
const out = {
  numeric: matched(t.digitsPreTokenizer(true), false),
  punct: matched(t.punctuationPreTokenizer('isolated'), false),
  space: matched(t.whitespaceSplitPreTokenizer(), true),
};
// \w via Whitespace: a word char stays as a piece; U+0001 is [^\w\s] so pieces are runs of non-word; word chars form their own pieces
{ const pieces = t.whitespacePreTokenizer().preTokenizeString(text); const w = []; for (const [p] of pieces) { const cs = Array.from(p); if (cs.length === 1 && cs[0] !== '\u0001') w.push(cs[0].codePointAt(0)); } out.word = w; }
{ const n = t.stripAccentsNormalizer(); const m = []; for (const ch of all) if (n.normalizeString(ch) === '') m.push(ch.codePointAt(0)); out.mark = m; }
{ const n = t.lowercase(); const m = []; for (const ch of all) { const r = n.normalizeString(ch); if (r !== ch) m.push([ch.codePointAt(0), Array.from(r).map(x => x.codePointAt(0))]); } out.lower = m; }
process.stdout.write(JSON.stringify(out));
