/* The push pages: the composer's fields and WeChat preview follow the channel and the text
   as it is typed; a push's progress bar is kept current by polling its JSON every 1.5 s.
   No inline script or style anywhere (the console's CSP): this file and pushes.css only. */
(function () {
  "use strict";

  var SEGMENTS = ["sent", "skipped", "failed", "pending"];
  var POLL_MS = 1500;

  // -- the composer ------------------------------------------------------------------------

  function composer(form) {
    var names = { mass: "群发消息", custom: "客服消息", subscribe: "订阅通知" };
    var text = form.querySelector("#text");
    var data = form.querySelector("#data");
    var page = form.querySelector("#page");
    var limit = form.querySelector("[data-text-limit]");
    var bubble = document.querySelector("[data-preview-text]");
    var card = document.querySelector("[data-preview-data]");
    var more = document.querySelector("[data-preview-page]");
    var label = document.querySelector("[data-preview-channel]");

    function channel() {
      var checked = form.querySelector("input[name=channel]:checked");
      return checked ? checked.value : "mass";
    }

    function showFields(current) {
      var blocks = form.querySelectorAll("[data-for-channels]");
      for (var i = 0; i < blocks.length; i += 1) {
        var wanted = blocks[i].getAttribute("data-for-channels").split(" ");
        blocks[i].hidden = wanted.indexOf(current) < 0;
      }
      var previews = document.querySelectorAll("[data-preview]");
      for (var j = 0; j < previews.length; j += 1) {
        var kind = previews[j].getAttribute("data-preview");
        previews[j].hidden = (kind === "subscribe") !== (current === "subscribe");
      }
      if (current !== "subscribe") {
        limit.textContent = limit.getAttribute("data-limit-" + current) + "；可换行。";
      }
      label.textContent = names[current];
    }

    function keywordLines() {
      var rows = [];
      var lines = data.value.split("\n");
      for (var i = 0; i < lines.length; i += 1) {
        var line = lines[i].replace("：", ":");
        var at = line.indexOf(":");
        if (line.trim() && at > 0) {
          rows.push([line.slice(0, at).trim(), line.slice(at + 1).trim()]);
        }
      }
      return rows;
    }

    function render() {
      var current = channel();
      showFields(current);
      var typed = text.value.trim();
      bubble.textContent = typed || "在左侧输入文字内容";
      bubble.classList.toggle("placeholder", !typed);
      while (card.firstChild) {
        card.removeChild(card.firstChild);
      }
      var rows = keywordLines();
      if (!rows.length) {
        rows = [["", "在左侧按“关键词: 内容”填写模板内容"]];
      }
      for (var i = 0; i < rows.length; i += 1) {
        var term = document.createElement("dt");
        term.textContent = rows[i][0];
        var value = document.createElement("dd");
        value.textContent = rows[i][1];
        card.appendChild(term);
        card.appendChild(value);
      }
      more.hidden = !page.value.trim();
    }

    form.addEventListener("input", render);
    form.addEventListener("change", render);
    render();
  }

  // -- a push's progress -------------------------------------------------------------------

  function progress(block) {
    var url = block.getAttribute("data-progress-url");
    var state = document.querySelector("[data-state]");
    var formatter = new Intl.NumberFormat("zh-CN");

    function draw(figures) {
      var total = figures.total || 1;
      var x = 0;
      for (var i = 0; i < SEGMENTS.length; i += 1) {
        var rect = block.querySelector("[data-segment=" + SEGMENTS[i] + "]");
        var width = 1000 * figures[SEGMENTS[i]] / total;
        rect.setAttribute("x", x.toFixed(2));
        rect.setAttribute("width", width.toFixed(2));
        x += width;
        block.querySelector("[data-count=" + SEGMENTS[i] + "]").textContent =
          formatter.format(figures[SEGMENTS[i]]);
      }
      block.querySelector("[data-count=total]").textContent = formatter.format(figures.total);
      var done = figures.total ? 100 * (figures.total - figures.pending) / figures.total : 0;
      block.querySelector("[data-percent]").textContent = (Math.round(done * 10) / 10) + "%";
      var eta = block.querySelector("[data-eta]");
      if (eta) {
        eta.textContent = figures.eta;
      }
      if (state) {
        state.textContent = figures.state_name;
        state.className = "tag push-state-" + figures.state;
      }
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (answer) {
          if (!answer.ok) {
            throw new Error("progress: HTTP " + answer.status);
          }
          return answer.json();
        })
        .then(function (figures) {
          draw(figures);
          var over = figures.state === "done" || figures.state === "cancelled";
          if (!(over && figures.pending === 0)) {
            window.setTimeout(poll, POLL_MS);
          }
        })
        .catch(function () {
          window.setTimeout(poll, POLL_MS * 4);  // a passing fault: try again, less often
        });
    }

    window.setTimeout(poll, POLL_MS);
  }

  var form = document.querySelector("[data-composer]");
  if (form) {
    composer(form);
  }
  var block = document.querySelector("[data-progress-url]");
  if (block) {
    progress(block);
  }
}());
