"""securecustomer: keep your customers' data safe.

Encrypted values under a key hierarchy you control, with keys that rotate and can be
destroyed to erase data for good.

Example:
    ```python
    from securecustomer import Context, Keyring, LocalKeyProvider
    from securecustomer.keys import FileKeyStore

    keyring = Keyring(LocalKeyProvider.from_file("master.key"), FileKeyStore("keys.json")).load()
    cipher = keyring.cipher("customers.email")
    token = cipher.encrypt("ada@example.com", context=Context("customers", "email", row=1))
    ```
"""

from securecustomer.crypto import Context, FieldCipher
from securecustomer.keys import Keyring, LocalKeyProvider

__all__ = ["Context", "FieldCipher", "Keyring", "LocalKeyProvider", "__version__"]

__version__ = "0.1.0"
