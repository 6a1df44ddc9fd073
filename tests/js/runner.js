// The smallest test runner: test(name, fn) registers, run() runs them one by one and returns
// [{name, ok, error}] for tests/js/test_units.py.
const tests = [];

export function test(name, fn) { tests.push({name, fn}); }

export function assert(condition, message) {
  if (!condition) { throw new Error(message || "assertion failed"); }
}

export function equal(actual, expected, message) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) { throw new Error(`${message || "not equal"}: got ${a}, expected ${e}`); }
}

/** Let the fake connections' tasks (operations, events) run until nothing is left. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i++) { await new Promise((resolve) => setTimeout(resolve, 0)); }
}

export async function run(timeoutMs = 3000) {
  const results = [];
  for (const {name, fn} of tests) {
    try {
      await Promise.race([fn(), new Promise((resolve, reject) =>
        setTimeout(() => reject(new Error(`no result after ${timeoutMs} ms`)), timeoutMs))]);
      results.push({name, ok: true, error: null});
    } catch (err) {
      results.push({name, ok: false, error: String((err && err.stack) || err)});
    }
  }
  return results;
}
