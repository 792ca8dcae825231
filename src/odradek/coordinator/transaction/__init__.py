"""The transaction coordinator: transactions and their ids in `__transaction_state`."""
