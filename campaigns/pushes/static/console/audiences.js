/* The audience builder: as the form changes, its fields are posted (with the page's CSRF
   token, as the form itself would be) to the page's preview URL, debounced, and the answer
   fills the live count, the masked sample and the messages next to the fields. Only the
   latest answer is shown: an older request that returns late is ignored.
   No inline script or style anywhere (the console's CSP): this file and audiences.css. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 300;

  function builder(form) {
    var size = document.querySelector("[data-size]");
    var status = document.querySelector("[data-status]");
    var sample = document.querySelector("[data-sample]");
    var tiers = {};
    var names = document.querySelector("[data-tier-names]");
    if (names) {
      var spans = names.content.querySelectorAll("[data-tier]");
      for (var i = 0; i < spans.length; i += 1) {
        tiers[spans[i].getAttribute("data-tier")] = spans[i].textContent;
      }
    }
    var timer = null;
    var latest = 0;

    function showProblems(problems) {
      var slots = form.querySelectorAll("[data-error-for]");
      for (var i = 0; i < slots.length; i += 1) {
        var key = slots[i].getAttribute("data-error-for");
        if (key === "name") {
          continue; // the name is checked on saving: the count does not need one
        }
        var message = problems[key] || "";
        slots[i].textContent = message;
        slots[i].hidden = !message;
        var field = form.querySelector("[data-field='" + key + "']");
        if (field) {
          field.classList.toggle("invalid", Boolean(message));
        }
      }
    }

    function cell(row, text) {
      var td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    }

    function showSample(rows) {
      sample.textContent = "";
      if (!rows.length) {
        var empty = document.createElement("tr");
        var td = document.createElement("td");
        td.colSpan = 5;
        td.className = "muted";
        td.textContent = "没有符合条件的粉丝";
        empty.appendChild(td);
        sample.appendChild(empty);
        return;
      }
      for (var i = 0; i < rows.length; i += 1) {
        var row = document.createElement("tr");
        var holder = rows[i].holder;
        cell(row, rows[i].openid);
        cell(row, holder ? holder.name : "未绑卡");
        cell(row, holder ? holder.card : "—");
        cell(row, holder ? (tiers[holder.tier] || holder.tier) : "—");
        cell(row, holder ? holder.city : "—");
        sample.appendChild(row);
      }
    }

    function refresh() {
      latest += 1;
      var mine = latest;
      status.textContent = "正在计算…";
      form.classList.add("counting");
      fetch(form.getAttribute("data-preview-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        body: new URLSearchParams(new FormData(form))
      }).then(function (response) {
        if (!response.ok) {
          throw new Error("preview " + response.status);
        }
        return response.json();
      }).then(function (body) {
        if (mine !== latest) {
          return;
        }
        form.classList.remove("counting");
        showProblems(body.problems);
        if (body.size === null) {
          size.textContent = "—";
          status.textContent = "条件有误，请按提示修改。";
          return;
        }
        size.textContent = body.size.toLocaleString("zh-CN");
        status.textContent = "按当前条件实时统计。";
        showSample(body.sample);
      }).catch(function () {
        if (mine === latest) {
          form.classList.remove("counting");
          status.textContent = "暂时无法统计，请稍后再试或刷新页面。";
        }
      });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DEBOUNCE_MS);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-preview-url]");
    if (form) {
      builder(form);
    }
  });
}());
