// How fast this browser sends to the recorder: as fast as the call itself.
//
// The recorder (aiortc) estimated bandwidth from arrival times taken on its busy event loop,
// not on the network, and its REMB held the camera to 30–500 kbit/s while the call ran at
// 2 Mbit/s on the same machine (issue 15). So its answer is taken without that estimate
// (no goog-remb, no abs-send-time: the browser's loss-based control remains, and backs off
// when the network drops packets), the link starts at the call's rate, and it is held to at
// most what the call's own estimate says this browser's uplink carries.

/**
 * The least a link starts at (kbit/s): a call just begun reads low, and without a delay
 * estimate the link would take many seconds to climb; the ceiling (the call's own rate,
 * set within a second) holds it down where the call is slower.
 */
export const START_KBPS = 2000;
/** Never hold the recorder below this (kbit/s): a call just starting reads low. */
export const FLOOR_KBPS = 300;

/** The recorder's answer without its bandwidth estimate, starting at startKbps for video. */
export function withoutOwnEstimate(sdp, startKbps) {
  const lines = sdp.split("\r\n").filter(
    (line) => !/^a=rtcp-fb:\S+ goog-remb\b/.test(line) && !/abs-send-time/.test(line));
  const start = Math.max(START_KBPS, Math.round(startKbps || 0));
  const out = [];
  const video = new Set();
  for (const line of lines) {
    const rtpmap = /^a=rtpmap:(\d+) (VP8|VP9|H264|AV1)\/90000/.exec(line);
    if (rtpmap) { video.add(rtpmap[1]); }
    const fmtp = /^a=fmtp:(\d+) /.exec(line);
    if (fmtp && video.has(fmtp[1])) {
      out.push(`${line};x-google-start-bitrate=${start}`);
      video.delete(fmtp[1]);
      continue;
    }
    out.push(line);
    if (rtpmap && !lines.some((l) => l.startsWith(`a=fmtp:${rtpmap[1]} `))) {
      out.push(`a=fmtp:${rtpmap[1]} x-google-start-bitrate=${start}`);
      video.delete(rtpmap[1]);
    }
  }
  return out.join("\r\n");
}

/**
 * The call's current video toward its peers: {rate (bit/s), width (px)} of the stream with the
 * highest target, or null before it sends.
 */
export async function callVideo(pcs) {
  let best = null;
  for (const pc of pcs) {
    try {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video" && s.targetBitrate &&
            (!best || s.targetBitrate > best.rate)) {
          best = {rate: s.targetBitrate, width: s.frameWidth || 0};
        }
      });
    } catch (e) { /* closed meanwhile */ }
  }
  return best;
}

/**
 * The recorder's encoding for what the call sends now: at most the call's rate (never below
 * the floor), and no larger a picture than the call's, so that the two cost the camera's
 * encoder alike (a larger one costs frames on a busy phone). sourceWidth: the camera's.
 */
export function encodingLike(call, sourceWidth) {
  const encoding = {maxBitrate: Math.max(FLOOR_KBPS * 1000, Math.round(call.rate))};
  if (call.width && sourceWidth > call.width) {
    encoding.scaleResolutionDownBy = sourceWidth / call.width;
  } else {
    encoding.scaleResolutionDownBy = 1;
  }
  return encoding;
}
