// Times of day (portal/static/js/text.js): written as the browser's region writes them.
import {timeLocales, timeOfDay} from "/static/js/text.js";
import {equal, test} from "./runner.js";

const AT = "2026-12-01T17:03:00Z";
const utcClock = (locales) => new Date(AT).toLocaleTimeString(locales,
  {hour: "2-digit", minute: "2-digit", timeZone: "UTC"});

test("a British browser on the English page gets a 24-hour clock, an American one 12 hours", () => {
  equal(timeLocales("en", ["en-GB", "en"]), ["en-GB", "en", "en"]);
  equal(utcClock(timeLocales("en", ["en-GB"])), "17:03");
  equal(/PM/.test(utcClock(timeLocales("en", ["en-US"]))), true, "en-US");
});

test("the browser's tags of the page's language come first; Norwegian tags are one language", () => {
  equal(timeLocales("en", ["nb-NO", "en-GB"]), ["en-GB", "nb-NO", "en"]);
  equal(timeLocales("nb", ["en-US", "no"]), ["no", "en-US", "nb"]);
  equal(timeLocales("nb", []), ["nb"]);
});

test("a time that does not parse is empty", () => {
  equal(timeOfDay("not a time", ["en-GB"]), "");
  equal(timeOfDay(AT, ["en-GB"]).length, 5);
});
