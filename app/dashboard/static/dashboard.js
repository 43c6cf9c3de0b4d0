// The period and metric pickers reload the page as soon as a choice is made.
// Without JavaScript the "Show" button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("picker");
  if (!form) return;
  form.classList.add("js");
  form.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { form.submit(); });
  });
});
