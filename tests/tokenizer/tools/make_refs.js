// Writes tests/tokenizer/data/handmade_refs.json: for every tokenizer in tests/tokenizer/data/ and every test
// string, the ids and text Hugging Face's Rust library (npm package "tokenizers", its Node binding) gives.
// Usage, from the repository root: NODE_PATH=<dir with node_modules> node tests/tokenizer/tools/make_refs.js <shared dir>
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
const path = require('path');

const shared = process.argv[2] || '../shared';
const fixture = JSON.parse(fs.readFileSync(path.join(shared, 'fixtures/tokenizers/token_refs_public.json')));
const strings = fixture.tiny.slice(0, 80).map((e) => e.text).concat([
  '', ' ', '  ', 'Hello world', ' Hello  world ', 'hello', 'say hello there', 'sayhello', 'hello,', 'HELLO',
  'Ｈｅｌｌｏ friend', '<s>', '<s>Hi', 'Hi</s>', 'a <mask> b', 'a<mask>b', '  <mask>  x', 'x [SEP]  y', 'x[SEP]y',
  'end <eot>  next', '<eot>', '<unk>', '<pad>', '[CLS] x', 'é', 'e\u0301', 'Ǆemo', 'ﬁne', '①②', '١٢٣', '12345',
  '2024-01-01', 'a--b---c', 'x|y||z', 'a.b,c;d!?', '...', '\u2581', '\u2581\u2581x', 'tab\there', 'new\nline',
  '\r\n', '中文字符', '日本語のテキスト', '한국어', '😀', '👨\u200d👩\u200d👧', '\u00a0nbsp', 'ſ', 'İstanbul', 'ΣΑΣ',
  'don\'t', 'I\'LL', 'we\'re', 'ＡＢＣ', 'x² + y³', '\u0000ctrl\u007f', '\ufffd', 'mixed 中 english 😀 text', 'a'.repeat(300),
]);

(async () => {
  const out = {};
  const dataDir = 'tests/tokenizer/data';
  for (const name of fs.readdirSync(dataDir).sort()) {
    const file = path.join(dataDir, name, 'tokenizer.json');
    if (!fs.existsSync(file)) continue;
    const tok = Tokenizer.fromFile(file);
    out[name] = [];
    for (const text of strings) {
      const ids = Array.from((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
      const idsSpecial = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
      out[name].push({ text, ids, ids_with_special: idsSpecial, decoded: await tok.decode(idsSpecial, false),
                       decoded_skip: await tok.decode(idsSpecial, true) });
    }
  }
  fs.writeFileSync(path.join(dataDir, 'handmade_refs.json'), JSON.stringify(out));
})();
