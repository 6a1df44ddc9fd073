// The one place that publishes the page's insides on window.samtale, for the e2e tests
// (tests/e2e) and for debugging in the console. Nothing in the page reads it back.
import {PeerLink} from "./peers.js";

/** On a page without a call (the appointment page's waiting room): {socket}. */
export function publishHooks(hooks) {
  window.samtale = hooks;
}

/** The call page: live views of the call (call.js) and the recording (record.js). */
export function publishCallHooks(call) {
  publishHooks({
    /** The class, so a test can wrap its methods (prototype) before a call starts. */
    PeerLink,
    media: call.media,
    state: call.state,
    links: call.links,
    get stage() { return call.stages.stage; },
    get socket() { return call.state.socket; },
    get self() { return call.state.self; },
    /** Participant id -> RTCPeerConnection of each PeerLink. */
    get peers() { return new Map([...call.links].map(([id, link]) => [id, link.pc])); },
    /** The last record:state. */
    get recording() { return call.record ? call.record.state : {status: "none"}; },
    /** {id, pc} of the peer connection to the recorder, or null. */
    get recorder() { return call.record ? call.record.recorder : null; },
    /**
     * A hearing on the media server: {active, status, publishPc, subscribePc, streams (mid ->
     * {participantId, kind}), layers (participant id -> substream), large (the big tile's
     * participant), stats() and downlink(ms) (hearing-stats.js)}.
     */
    get hearing() { return call.hearing ? call.hearing.hook : null; },
    /** A hearing's procedure: {role, state (the last hearing:state), place, locked}. */
    get court() { return call.court ? call.court.hook : null; },
  });
}
