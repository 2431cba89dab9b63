import { startServer } from '../test/transport/helpers.js';
import http from 'node:http';
const s = await startServer();
const port = new URL(s.url).port;
await new Promise<void>((r) => { const req = http.request({ host: '127.0.0.1', port, path: '/%E0%A4%A' }, (res) => { let b=''; res.on('data', d => b+=d); res.on('end', () => { console.log(res.statusCode, res.headers, b); r(); }); }); req.end(); });
await s.close();
