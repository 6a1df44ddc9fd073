// Entry of the unit test page (tests/js/test_units.py): runs every test file's tests and
// leaves the results on window.__results.
import {run} from "./runner.js";
import "./stage.test.js";
import "./peers.test.js";
import "./idle.test.js";
import "./hearing.test.js";
import "./court.test.js";
import "./record-rate.test.js";
import "./text.test.js";

window.__results = await run();
