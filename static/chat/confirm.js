// Forms that ask before they submit: <form data-confirm="Question?"> is sent only once the user confirms.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
