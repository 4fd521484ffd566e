/* The H5 binding pages: ask before unbinding, and send each form once (one SMS per tap). */
(function () {
  "use strict";

  function setButtons(form, disabled) {
    var buttons = form.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i += 1) {
      buttons[i].disabled = disabled;
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.getAttribute("data-sent")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-sent", "1");
    setButtons(form, true);
  });

  // Back from the next page (back/forward cache): the form may be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    var forms = document.querySelectorAll("form[data-sent]");
    for (var i = 0; i < forms.length; i += 1) {
      forms[i].removeAttribute("data-sent");
      setButtons(forms[i], false);
    }
  });
}());
