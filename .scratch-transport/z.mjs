import { z } from 'zod';
const S = z.strictObject({ command: z.string().min(1).max(10), timeoutS: z.number().int().positive().max(604800).optional() });
const r = S.safeParse({ command: '', extra: 1, timeoutS: 1.5 });
console.log(JSON.stringify(r.error.issues, null, 1));
console.log(JSON.stringify(z.toJSONSchema(S)));
console.log(JSON.stringify(S.safeParse(undefined).error.issues));
console.log(JSON.stringify(S.safeParse("x").error.issues));
