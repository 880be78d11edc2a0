"""chat-bff: a backend-for-frontend for a contact center customer chat API."""
