// The room's buttons: Join on the device check, leaving the waiting room, and the call's
// controls (mute, camera, switch camera, leave, end for everyone), and what follows a swapped
// local track.
import {askFirst} from "./confirm.js";

export function wireControls(call) {
  const {state, media, isHost, t, record, check} = call;
  const $ = (id) => document.getElementById(id);

  function setControl(button, on, label) {
    button.dataset.on = on ? "true" : "false";
    button.querySelector(".ctl-label").textContent = label;
  }

  function updateControls() {
    const mute = $("mute"), camera = $("camera");
    // A host's locked mute: the button says why it does nothing.
    const locked = !!call.court && call.court.muteLocked;
    setControl(mute, media.audioOn, locked ? t("muted_by_court")
      : media.audioOn ? t("mute") : t("unmute"));
    mute.disabled = !media.audioTrack || locked;
    mute.dataset.locked = locked ? "true" : "false";
    if ($("mute-locked")) {
      $("mute-locked").hidden = !locked;
      if (locked) { mute.setAttribute("aria-describedby", "mute-locked"); }
      else { mute.removeAttribute("aria-describedby"); }
    }
    setControl(camera, media.videoOn, media.videoOn ? t("camera_stop") : t("camera_start"));
    camera.disabled = !media.videoTrack;
    const cams = media.devices("video").length;
    const coarse = window.matchMedia("(pointer: coarse)").matches;
    $("switch-camera").hidden = !media.videoTrack || (cams < 2 && !coarse);
    $("local-video").classList.toggle("off", !media.videoOn);
  }

  // Local tracks swapped (another camera, a device unplugged): send the new ones.
  media.ontrackchange = (kind, track) => {
    for (const link of call.links.values()) {
      link.replaceTrack(kind, track).catch((err) => console.warn("samtale: replaceTrack", err));
    }
    if (record) { record.replaceTrack(kind, track); }
    if (call.hearing) { call.hearing.replaceTrack(kind, track); }
    check.showPreview();
    updateControls();
    call.sendMediaState();
  };

  $("join").addEventListener("click", async () => {
    if (!state.socket || !state.welcome || (record && !record.mayJoin()) ||
        (call.hearing && !call.hearing.mayJoin()) ||
        (call.court && !call.court.mayJoin())) { return; }
    $("join").disabled = true;
    await state.mediaReady;
    media.savePrefs();
    if (isHost) {
      call.joinCall(false);
    } else {
      call.enterLobby();
    }
  });
  if ($("lobby-leave")) {
    $("lobby-leave").addEventListener("click", () => {
      call.emit("lobby:leave", {});
      call.stages.go("left");
    });
  }

  $("mute").addEventListener("click", () => {
    if (call.court && call.court.muteLocked && !media.audioOn) { return; }
    media.setEnabled("audio", !media.audioOn);
    updateControls();
    call.announce(media.audioOn ? t("live_mic_on") : t("live_mic_off"));
    call.sendMediaState();
  });
  $("camera").addEventListener("click", () => {
    media.setEnabled("video", !media.videoOn);
    updateControls();
    call.announce(media.videoOn ? t("live_camera_on") : t("live_camera_off"));
    call.sendMediaState();
  });
  $("switch-camera").addEventListener("click", async () => {
    $("switch-camera").disabled = true;
    await media.switchCamera();
    $("switch-camera").disabled = false;
    check.showPreview();
    updateControls();
  });
  // Leaving puts a guest back in the waiting room; ending cannot be undone (the appointment
  // is over and every link stops working): both are asked first.
  $("leave").addEventListener("click", async () => {
    if (!(await askFirst($("leave-confirm")))) { return; }
    if (call.stages.stage !== "call") { return; }
    if (state.inCall) { call.emit("call:leave", {}); }
    call.stages.go("left");
  });
  if ($("end-call")) {
    $("end-call").addEventListener("click", async () => {
      if (!(await askFirst($("end-confirm")))) { return; }
      state.ending = true;
      $("end-call").disabled = true;
      call.emit("call:end", {});
    });
  }
  $("rejoin").addEventListener("click", () => location.reload());
  $("error-reload").addEventListener("click", () => location.reload());

  return {updateControls};
}
