/* The campaign form: add and remove option rows (without script the form keeps one blank row
   to fill in, and a row left blank is no option). */
(function () {
  "use strict";

  var rows = document.querySelector("[data-option-rows]");
  var add = document.querySelector("[data-add-row]");
  if (!rows || !add) {
    return;
  }

  // "第 2 个选项的名称": the labels follow the rows' order after each change.
  function renumber() {
    var all = rows.querySelectorAll("tr");
    for (var i = 0; i < all.length; i += 1) {
      var inputs = all[i].querySelectorAll("input[data-label]");
      for (var j = 0; j < inputs.length; j += 1) {
        inputs[j].setAttribute("aria-label",
          "第 " + (i + 1) + " 个选项的" + inputs[j].getAttribute("data-label"));
      }
    }
  }

  function blankRow() {
    var row = rows.querySelector("tr:last-child").cloneNode(true);
    var inputs = row.querySelectorAll("input");
    for (var i = 0; i < inputs.length; i += 1) {
      inputs[i].value = inputs[i].name === "option_points" ? "0" : "";
      inputs[i].removeAttribute("id");
      inputs[i].removeAttribute("aria-invalid");
      inputs[i].removeAttribute("aria-describedby");
    }
    var errors = row.querySelectorAll(".error");
    for (var k = 0; k < errors.length; k += 1) {
      errors[k].remove();
    }
    var cells = row.querySelectorAll("td.invalid");
    for (var m = 0; m < cells.length; m += 1) {
      cells[m].classList.remove("invalid");
    }
    return row;
  }

  add.hidden = false;
  var removers = rows.querySelectorAll("[data-remove-row]");
  for (var i = 0; i < removers.length; i += 1) {
    removers[i].hidden = false;
  }

  add.addEventListener("click", function () {
    var row = blankRow();
    rows.appendChild(row);
    renumber();
    row.querySelector("input").focus();
  });

  rows.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-row]");
    if (!button) {
      return;
    }
    if (rows.querySelectorAll("tr").length === 1) {
      rows.appendChild(blankRow());  // the last row is emptied rather than removed
    }
    button.closest("tr").remove();
    renumber();
    add.focus();
  });
}());
