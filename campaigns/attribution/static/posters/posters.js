/* A branch's poster ZIP: the progress bar follows the background job (asking every second)
   until the ZIP is ready, then shows the download link. Without script the page shows the
   state when it was loaded; reloading shows the progress. */
(function () {
  "use strict";

  var box = document.querySelector("[data-batch]");
  if (!box) {
    return;
  }
  var bar = box.querySelector("[data-batch-bar]");
  var figure = box.querySelector("[data-batch-percent]");
  var status = box.querySelector("[data-batch-status]");
  var download = box.querySelector("[data-batch-download]");
  var url = box.getAttribute("data-progress-url");
  var INTERVAL = 1000;

  function size(bytes) {
    if (bytes >= 1048576) {
      return (bytes / 1048576).toFixed(1) + " MB";
    }
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function words(batch) {
    var state = batch.state;
    if (state === "building" && batch.done >= batch.total) {
      state = "packing";
    }
    return status.getAttribute("data-word-" + state)
      .replace("{done}", batch.done.toLocaleString())
      .replace("{total}", batch.total.toLocaleString())
      .replace("{size}", batch.size ? size(batch.size) : "")
      .replace("{error}", batch.error || "");
  }

  function show(batch) {
    bar.value = batch.percent;
    bar.textContent = batch.percent + "%";
    figure.textContent = batch.percent + "%";
    status.textContent = words(batch);
    status.classList.toggle("failed", batch.state === "failed");
    if (batch.state === "ready") {
      download.href = batch.download;
      download.hidden = false;
    }
    return batch.state === "ready" || batch.state === "failed";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (batch) {
        if (!show(batch)) {
          window.setTimeout(poll, INTERVAL);
        }
      })
      .catch(function () {
        // A lost connection or an ended login: try again a little later.
        window.setTimeout(poll, INTERVAL * 5);
      });
  }

  poll();
}());
