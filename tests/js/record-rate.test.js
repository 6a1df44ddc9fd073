// What the page sends the recorder (portal/static/js/record-rate.js): its answer without the
// recorder's own bandwidth estimate, and an encoding like the call's.
import {FLOOR_KBPS, START_KBPS, encodingLike, withoutOwnEstimate} from "/static/js/record-rate.js";
import {assert, equal, test} from "./runner.js";

const ANSWER = [
  "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 96", "a=rtpmap:96 opus/48000/2",
  "a=fmtp:96 minptime=10;useinbandfec=1",
  "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
  "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
  "a=rtpmap:97 VP8/90000", "a=rtcp-fb:97 nack", "a=rtcp-fb:97 nack pli",
  "a=rtcp-fb:97 goog-remb", "a=rtpmap:98 rtx/90000", "a=fmtp:98 apt=97", "",
].join("\r\n");

test("the recorder's answer loses its bandwidth estimate and starts video at the call's rate", () => {
  const sdp = withoutOwnEstimate(ANSWER, 2500);
  assert(!sdp.includes("goog-remb"), sdp);
  assert(!sdp.includes("abs-send-time"), sdp);
  assert(sdp.includes("a=rtcp-fb:97 nack pli"), "keyframe requests stay");
  assert(sdp.includes("a=rtpmap:97 VP8/90000\r\na=fmtp:97 x-google-start-bitrate=2500\r\n"), sdp);
  equal(sdp.match(/x-google-start-bitrate/g).length, 1, "video only, once");
  assert(sdp.includes("a=fmtp:96 minptime=10;useinbandfec=1\r\n"), "audio untouched");
  assert(sdp.endsWith("\r\n"), "still ends with a line break");
});

test("a call just begun starts the recorder no lower than the start rate", () => {
  assert(withoutOwnEstimate(ANSWER, 300).includes(`x-google-start-bitrate=${START_KBPS}`));
  assert(withoutOwnEstimate(ANSWER, 0).includes(`x-google-start-bitrate=${START_KBPS}`));
  const withFmtp = ANSWER.replace("a=rtpmap:97 VP8/90000\r\n",
    "a=rtpmap:97 VP8/90000\r\na=fmtp:97 max-fr=30\r\n");
  assert(withoutOwnEstimate(withFmtp, 3000).includes("a=fmtp:97 max-fr=30;x-google-start-bitrate=3000"));
});

test("the recorder's encoding follows the call's rate and picture size", () => {
  equal(encodingLike({rate: 1_700_000, width: 640}, 1280),
    {maxBitrate: 1_700_000, scaleResolutionDownBy: 2});
  equal(encodingLike({rate: 2_500_000, width: 1280}, 1280),
    {maxBitrate: 2_500_000, scaleResolutionDownBy: 1});
  equal(encodingLike({rate: 20_000, width: 0}, 1280),
    {maxBitrate: FLOOR_KBPS * 1000, scaleResolutionDownBy: 1});
});
