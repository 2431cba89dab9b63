import Fastify from 'fastify';
const app = Fastify({ bodyLimit: 100 });
app.removeAllContentTypeParsers();
const def = app.getDefaultJsonParser('error', 'error');
app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
  if (body.trim() === '') return done(null, undefined);
  def(req, body, done);
});
app.setErrorHandler((err, req, reply) => { reply.status(299).send({ code: err.code, sc: err.statusCode, name: err.name, msg: err.message }); });
app.setNotFoundHandler((req, reply) => reply.status(404).send({ nf: true }));
app.post('/x', async (req) => ({ body: req.body ?? null, ct: req.headers['content-type'] ?? null }));
await app.ready();
const cases = [
  [{ 'content-type': 'application/json' }, '{"a":1}'],
  [{ 'content-type': 'application/json; charset=utf-8' }, '{"a":1}'],
  [{ 'content-type': 'application/json' }, '{bad'],
  [{ 'content-type': 'application/json' }, ''],
  [{ 'content-type': 'text/plain' }, 'hello'],
  [{}, 'hello'],
  [{}, undefined],
  [{ 'content-type': 'application/json' }, JSON.stringify({ a: 'x'.repeat(200) })],
  [{ 'content-type': 'application/json' }, '{"__proto__":{"a":1}}'],
  [{ 'content-type': 'application/vnd.api+json' }, '{"a":1}'],
];
for (const [headers, payload] of cases) {
  const r = await app.inject({ method: 'POST', url: '/x', headers, payload });
  console.log(r.statusCode, r.body);
}
const r = await app.inject({ method: 'PUT', url: '/x' }); console.log(r.statusCode, r.body);
