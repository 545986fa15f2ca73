// docs/app-proxy.md's Node verifier, asked by the tests (backend_verifier.py): the
// first line of stdin is the guide's code block, each later one a question in JSON;
// each answer is one line of JSON.
const readline = require('node:readline');

const lines = readline.createInterface({ input: process.stdin });
let guide = null;
const seen = new Map();

async function answer(question) {
  if (question.op === 'fetch') return [...(await guide.fetchKeys(question.url)).keys()];
  const keys = new Map(Object.entries(question.hmac).map(([kid, hex]) => [kid, guide.hmacKey(hex)]));
  if (question.jwks) for (const [kid, key] of guide.keysOf(question.jwks)) keys.set(kid, key);
  if (question.seen && !seen.has(question.seen)) seen.set(question.seen, new guide.SeenNonces());
  const body = question.body === null ? null : Buffer.from(question.body, 'base64');
  const user = await guide.verifiedUser(keys, question.request, body, seen.get(question.seen));
  return user ?? null;
}

let queue = Promise.resolve();
lines.on('line', (line) => {
  if (guide === null) {
    const module = { exports: {} };
    new Function('require', 'module', 'exports', JSON.parse(line))(require, module, module.exports);
    guide = module.exports;
    return;
  }
  queue = queue.then(async () => {
    try {
      process.stdout.write(`${JSON.stringify({ result: await answer(JSON.parse(line)) })}\n`);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ error: String(error && error.stack) })}\n`);
    }
  });
});
