from multibackend.cli import console

console()
