// Asks the backend-for-frontend for its configuration and shows what it answered.
fetch('/api/config')
  .then((response) => response.json())
  .then((config) => { document.getElementById('status').textContent = `Battles from ${config.battleService}`; })
  .catch(() => { document.getElementById('status').textContent = 'Backend unavailable'; });
