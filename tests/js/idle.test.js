// The idle warning (portal/static/js/idle.js): when it shows, what "stay signed in" does, and
// that the server's word on the time left wins.
import {clockText, watchIdle} from "/static/js/idle.js";
import {FakeClock} from "./clock.js";
import {equal, settle, test} from "./runner.js";

function page({idle = 900, warn = 120, answers = []} = {}) {
  const el = document.createElement("div");
  el.hidden = true;
  Object.assign(el.dataset, {idleSeconds: String(idle), warnSeconds: String(warn),
                             statusUrl: "/session/idle", touchUrl: "/session/touch", csrf: "t"});
  el.innerHTML = "<strong data-idle-left></strong><button data-idle-stay></button>";
  document.body.append(el);
  const clock = new FakeClock();
  const asked = [];
  let reloads = 0;
  const fetch = async (url, options) => {
    asked.push([url, (options && options.method) || "GET"]);
    const [status, body] = answers.shift();
    return {ok: status === 200, status, json: async () => body};
  };
  const timers = {now: () => clock.now, setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
                  clearTimeout: (id) => clock.clearTimeout(id)};
  watchIdle(el, {clock: timers, fetch, reload: () => { reloads += 1; }});
  return {el, clock, asked, reloads: () => reloads,
          left: () => el.querySelector("[data-idle-left]").textContent,
          stay: () => el.querySelector("[data-idle-stay]").click()};
}

const signedIn = (left) => [200, {signed_in: true, seconds_left: left, warn_seconds: 120}];

test("the time left reads as minutes and seconds", () => {
  equal([clockText(0), clockText(59.2), clockText(120), clockText(-3)],
        ["0:00", "1:00", "2:00", "0:00"]);
});

test("the warning shows two minutes before the end, once the server agrees", async () => {
  const p = page({answers: [signedIn(120)]});
  p.clock.tick(779 * 1000);
  equal([p.el.hidden, p.asked.length], [true, 0]);
  p.clock.tick(1000);
  await settle();
  equal([p.el.hidden, p.left(), p.asked], [false, "2:00", [["/session/idle", "GET"]]]);
  p.clock.tick(30 * 1000);
  equal(p.left(), "1:30");
});

test("activity elsewhere (another tab, a call) moves the warning on", async () => {
  const p = page({answers: [signedIn(600)]});
  p.clock.tick(780 * 1000);
  await settle();
  equal(p.el.hidden, true);
  p.clock.tick(479 * 1000);
  equal(p.asked.length, 1);  // not asked again before the new warning time
});

test("stay signed in touches the session and hides the warning", async () => {
  const p = page({answers: [signedIn(120), signedIn(900)]});
  p.clock.tick(780 * 1000);
  await settle();
  p.stay();
  await settle();
  equal([p.el.hidden, p.asked[1]], [true, ["/session/touch", "POST"]]);
});

test("at the end the page reloads, and the server shows the sign-in page", async () => {
  const p = page({answers: [signedIn(120), [401, {signed_in: false}]]});
  p.clock.tick(780 * 1000);
  await settle();
  p.clock.tick(120 * 1000 + 500);
  await settle();
  equal([p.reloads(), p.el.hidden], [1, true]);
});
