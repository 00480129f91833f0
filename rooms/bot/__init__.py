"""The bot: a customer's message in a bot room goes to Watson, the reply to WhatsApp; recovery
takes up what a dead process left."""
