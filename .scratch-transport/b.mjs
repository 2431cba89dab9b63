import http from 'node:http';
const port = process.argv[2];
const req = http.request({ host: '127.0.0.1', port, path: '/%E0%A4%A' }, (res) => { let b=''; res.on('data', d => b+=d); res.on('end', () => console.log(res.statusCode, b)); });
req.end();
