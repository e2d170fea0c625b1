// The two same-origin files the link pages load (CSP 'self': nothing inline).
//
// The script is progressive enhancement only: every form is a plain POST that works
// with JavaScript off. It does one thing: a form sends once. On the first submit
// it disables the button (a double-click or a second Enter sends nothing more) and
// lets the normal form POST go; the answer is a new page. A page the browser
// restores from its back/forward cache gets its button back, so going back and
// pressing again still works (the server answers a repeat of a completed action
// with success).

export const SCRIPT = `'use strict';
(function () {
  var forms = document.querySelectorAll('form[data-send-once]');
  function reset(form) {
    form.removeAttribute('data-sending');
    var button = form.querySelector('button[type="submit"]');
    if (!button) return;
    button.disabled = false;
    button.removeAttribute('aria-busy');
    var label = button.getAttribute('data-label');
    if (label) button.textContent = label;
  }
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener('submit', function (event) {
      if (form.hasAttribute('data-sending')) { event.preventDefault(); return; }
      form.setAttribute('data-sending', '');
      var button = form.querySelector('button[type="submit"]');
      if (!button) return;
      button.setAttribute('data-label', button.textContent);
      button.textContent = button.getAttribute('data-sending-label') || button.textContent;
      button.setAttribute('aria-busy', 'true');
      button.disabled = true;
    });
  });
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) Array.prototype.forEach.call(forms, reset);
  });
})();
`

// border-box everywhere: a full-width input with padding stays inside a 390 px screen.
export const STYLES = `*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:1rem;line-height:1.5;color:#1c2024;background:#f4f5f7}
.brand{display:block;max-width:30rem;margin:0 auto;padding:1rem 1rem 0;font-weight:700;font-size:1.125rem;color:#1c2024;text-decoration:none}
main{max-width:30rem;margin:1rem auto;padding:1.5rem 1rem;background:#fff;border-radius:.75rem}
@media (min-width:32rem){main{padding:2rem}}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
p,ul{margin:0 0 1rem}
label{display:block;font-weight:600;margin:0 0 .25rem}
input,button,.button{display:block;width:100%;max-width:100%;font:inherit;padding:.7rem .8rem;border-radius:.5rem;margin:0 0 1rem}
input{border:1px solid #8a9099;background:#fff;color:inherit}
input:focus,button:focus,a:focus{outline:3px solid #4c7bd9;outline-offset:2px}
button,.button{border:0;background:#2457c5;color:#fff;font-weight:600;cursor:pointer;text-align:center;text-decoration:none}
button[disabled]{background:#7d8794;cursor:progress}
.rules{padding:.75rem 1rem;background:#f4f5f7;border-radius:.5rem}
.rules p{margin:0 0 .25rem;font-weight:600}
.rules ul{margin:0;padding-left:1.25rem}
.notice{border:2px solid;border-radius:.5rem;padding:1rem;margin:0 0 1rem}
.notice h1,.notice h2{display:flex;gap:.5rem;align-items:flex-start;margin:0 0 .5rem}
.notice h2{font-size:1.125rem}
.notice p:last-child{margin-bottom:0}
.icon{flex:none;display:inline-flex;align-items:center;justify-content:center;width:1.75rem;height:1.75rem;border-radius:50%;color:#fff;font-size:1rem;line-height:1}
.notice-success{border-color:#1a7f37;background:#eaf6ee}
.notice-success .icon{background:#1a7f37}
.notice-error{border-color:#b42318;background:#fdeeec}
.notice-error .icon{background:#b42318}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
footer{max-width:30rem;margin:0 auto;padding:0 1rem 2rem;font-size:.9375rem}
footer a,main a:not(.button){color:#2457c5}
`
