import { describe, expect, it } from "vitest";
import { advice, duration, failedFirst, RateMeter, readableTimes, ruleTitle } from "./format";

describe("RateMeter", () => {
  it("has no rate or time left from one sample", () => {
    const m = new RateMeter();
    m.add(0, 0);
    expect(m.rate()).toBeNull();
    expect(m.eta(100)).toBeNull();
  });

  it("measures bytes per second and the time left", () => {
    const m = new RateMeter();
    m.add(0, 0);
    m.add(1000, 500);
    m.add(2000, 1000);
    expect(m.rate()).toBe(2000);
    expect(m.eta(10000)).toBe(4);
  });

  it("follows the recent rate, not the average since the start", () => {
    const m = new RateMeter(1000);
    m.add(0, 0);
    m.add(10000, 1000); // fast at first
    m.add(10100, 2000); // then slow
    m.add(10200, 3000);
    expect(m.rate()).toBe(100);
  });

  it("starts again when a transfer restarts from a lower offset", () => {
    const m = new RateMeter();
    m.add(0, 0);
    m.add(5000, 1000);
    m.add(100, 1100);
    expect(m.rate()).toBeNull();
  });
});

describe("words", () => {
  it.each([
    ["timeout", /cable/],
    ["not_enrolled", /hub administrator/],
    ["hub_unreachable", /Nothing is lost/],
    ["something_new", /Try again/],
  ])("advice for %s", (kind, want) => {
    expect(advice({ kind, message: "" })).toMatch(want);
  });

  it("names known rules in plain words and keeps unknown ids", () => {
    expect(ruleTitle("target.hardware")).toBe("Fits this hardware revision");
    expect(ruleTitle("custom.rule")).toBe("custom.rule");
  });

  it("lists failed rules first", () => {
    const f = (rule: string, passed: boolean) => ({ rule, passed, found: "", required: "", explanation: "" });
    expect(failedFirst([f("a", true), f("b", false), f("c", true)]).map((x) => x.rule)).toEqual(["b", "a", "c"]);
  });

  it("shortens times inside rule values", () => {
    expect(readableTimes("before 2027-11-22T00:00:00+00:00")).toBe("before 2027-11-22 00:00 UTC");
    expect(readableTimes("2026-11-22T12:32:57.554552170+00:00")).toBe("2026-11-22 12:32 UTC");
    expect(readableTimes("today 2026-11-22")).toBe("today 2026-11-22");
  });

  it("formats durations", () => {
    expect(duration(42.4)).toBe("42 s");
    expect(duration(125)).toBe("2 min 5 s");
    expect(duration(Infinity)).toBe("—");
  });
});
