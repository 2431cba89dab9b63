import WebSocket from 'ws';

const url = process.env.BATON_URL ?? 'ws://127.0.0.1:8787';
let since = Number(process.env.SINCE ?? 0);
const ws = new WebSocket(`${url}/v1/events?token=${process.env.TOKEN}&since=${since}`);
ws.on('open', () => ws.send(JSON.stringify({ type: 'ping' })));
ws.on('message', (data) => {
  const frame = JSON.parse(String(data));
  if (typeof frame.seq === 'number') since = frame.seq;
  console.log(JSON.stringify(frame));
});
ws.on('close', (code) => console.log(`closed ${code}; resume with SINCE=${since}`));
