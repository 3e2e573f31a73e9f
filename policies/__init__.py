"""Authorization: identities, Casbin policies compiled into SQL access filters, explain."""
