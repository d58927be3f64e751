// dynalite on 127.0.0.1 only (its CLI listens on every interface), on the port the OS
// picks; prints the port, then serves until killed. In memory: nothing outlives the process.
const dynalite = require('dynalite')

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})
