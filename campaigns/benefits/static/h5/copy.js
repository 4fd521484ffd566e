/* The benefit pages' copy buttons: <button data-copy="ID"> copies the text of element ID
   and says so in the next .copy-status. Without script the buttons stay hidden and the
   code can still be selected (it selects as one word). */
(function () {
  "use strict";

  function tell(button, words) {
    var status = button.nextElementSibling;
    if (status && status.classList.contains("copy-status")) {
      status.textContent = words;
    }
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // WeChat's older browsers have no asynchronous clipboard: copy the selection instead.
  function copyBySelection(button, element) {
    selectText(element);
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (ignored) {
      copied = false;
    }
    tell(button, copied ? "已复制" : "请长按券码复制");
  }

  var buttons = document.querySelectorAll("[data-copy]");
  for (var i = 0; i < buttons.length; i += 1) {
    buttons[i].hidden = false;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var element = document.getElementById(button.getAttribute("data-copy"));
    if (!element) {
      return;
    }
    var text = element.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        tell(button, "已复制");
      }, function () {
        copyBySelection(button, element);
      });
    } else {
      copyBySelection(button, element);
    }
  });
}());
