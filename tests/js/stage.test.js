// The room's stage machine (portal/static/js/stage.js): who may go where, and what is refused.
import {StageMachine, TERMINAL, transitionsFor} from "/static/js/stage.js";
import {assert, equal, test} from "./runner.js";

function machine(role) {
  const moves = [], warnings = [];
  const stages = new StageMachine({
    transitions: transitionsFor(role),
    onChange: (stage, previous) => moves.push([previous, stage]),
    warn: (message) => warnings.push(message),
  });
  return {stages, moves, warnings};
}

test("the room starts at the device check and nowhere else", () => {
  for (const role of ["host", "guest"]) {
    const {stages, moves} = machine(role);
    for (const stage of ["lobby", "call", "ended", "left"]) {
      equal(stages.go(stage), false, `${role}: ${stage} first`);
    }
    equal(stages.stage, null);
    equal(stages.go("check"), true);
    equal(moves, [[null, "check"]]);
  }
});

test("a guest goes from the check through the waiting room into the call and leaves", () => {
  const {stages, moves, warnings} = machine("guest");
  for (const stage of ["check", "lobby", "call", "left"]) {
    equal(stages.go(stage), true, stage);
  }
  equal(moves, [[null, "check"], ["check", "lobby"], ["lobby", "call"], ["call", "left"]]);
  assert(stages.terminal);
  equal(warnings, []);
});

test("a host goes from the check into the call, never to the waiting room or denied", () => {
  const {stages, moves, warnings} = machine("host");
  stages.go("check");
  equal(stages.go("lobby"), false, "host into the lobby");
  equal(stages.go("denied"), false, "host denied");
  equal(stages.go("call"), true);
  equal(stages.go("lobby"), false, "host from the call into the lobby");
  equal(stages.go("ended"), true);
  equal(moves, [[null, "check"], ["check", "call"], ["call", "ended"]]);
  equal(warnings.length, 3, "refusals are reported");
});

test("a guest can be denied from the waiting room", () => {
  const {stages} = machine("guest");
  stages.go("check");
  stages.go("lobby");
  equal(stages.go("denied"), true);
  equal(stages.stage, "denied");
});

test("back to the check for the notice, and from the call back to the waiting room", () => {
  const {stages} = machine("guest");
  for (const stage of ["check", "lobby", "check", "call", "check", "call", "lobby", "call"]) {
    equal(stages.go(stage), true, stage);
  }
});

test("the end is final: nothing leads out of a terminal stage", () => {
  for (const end of TERMINAL) {
    const {stages, moves} = machine("guest");
    stages.go("check");
    equal(stages.go(end), true, end);
    for (const next of ["check", "lobby", "call", ...TERMINAL]) {
      if (next !== end) { equal(stages.go(next), false, `${end} -> ${next}`); }
    }
    equal(stages.stage, end);
    equal(moves.length, 2, `${end}: moves after the end`);
  }
});

test("staying on a stage is no change, and unknown stages are refused", () => {
  const {stages, moves, warnings} = machine("guest");
  stages.go("check");
  equal(stages.go("check"), false);
  equal(warnings, [], "staying put is not an error");
  equal(stages.go("hallway"), false);
  equal(stages.go(undefined), false);
  equal(stages.stage, "check");
  equal(moves, [[null, "check"]]);
  equal(warnings.length, 2);
});
