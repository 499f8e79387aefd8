// The graphql-http audit suite (the GraphQL-over-HTTP specification's conformance checks, from
// the npm package the spec's reference server passes in full) against a running server.
//   node scripts/graphql-clients/audit.mjs http://127.0.0.1:8080/graphql
// Prints one JSON line: {"must": {"ok": n, "total": n}, "should": {...}, "may": {...},
// "failed": [{"name", "status", "reason"}]}. Exit status 0 when every MUST passes and at least
// SHOULD_MIN SHOULDs (env, default 21) do, 1 otherwise.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: audit.mjs <url of the GraphQL endpoint>');
  process.exit(2);
}
const shouldMin = Number(process.env.SHOULD_MIN || '21');
const results = await auditServer({ url });
const tally = { must: { ok: 0, total: 0 }, should: { ok: 0, total: 0 }, may: { ok: 0, total: 0 } };
const failed = [];
for (const result of results) {
  const level = result.name.split(' ')[0].toLowerCase();
  const bucket = tally[level];
  if (!bucket) continue;
  bucket.total += 1;
  if (result.status === 'ok') bucket.ok += 1;
  else {
    let reason = result.reason;
    if (result.response) {
      try {
        reason += ` (answered ${result.response.status}: ${(await result.response.text()).slice(0, 200)})`;
      } catch {
        // the body was read by the audit already
      }
    }
    failed.push({ name: result.name, status: result.status, reason });
  }
}
console.log(JSON.stringify({ ...tally, failed }));
const pass = tally.must.ok === tally.must.total && tally.should.ok >= shouldMin;
process.exit(pass ? 0 : 1);
