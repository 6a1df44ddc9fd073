"""What a guest sees when opening an invite link."""
