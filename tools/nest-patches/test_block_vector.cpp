// Randomised check of NEST's BlockVector (libnestutil/block_vector.h) against std::vector:
// push_back (copy and move), erase, clear, operator[], iteration, size, iterator arithmetic,
// copy construction, the sized constructor and std::sort through the iterators. Built and
// run by tools/setup-env.sh after it patches the header (tools/nest-patches), so a patch that
// breaks the container stops the set-up before NEST is built.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "block_vector.h"

static int failures = 0;
#define CHECK( cond )                                                      \
  do                                                                       \
  {                                                                        \
    if ( not( cond ) )                                                     \
    {                                                                      \
      std::fprintf( stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond ); \
      if ( ++failures > 20 )                                               \
        std::exit( 1 );                                                    \
    }                                                                      \
  } while ( 0 )

static void
same( const BlockVector< long >& bv, const std::vector< long >& ref )
{
  CHECK( bv.size() == ref.size() );
  CHECK( static_cast< size_t >( bv.end() - bv.begin() ) == ref.size() );
  size_t i = 0;
  for ( auto it = bv.begin(); it != bv.end(); ++it, ++i )
  {
    CHECK( i < ref.size() and *it == ref[ i ] );
  }
  CHECK( i == ref.size() );
  for ( size_t k = 0; k < ref.size(); ++k )
  {
    CHECK( bv[ k ] == ref[ k ] );
  }
  if ( not ref.empty() )
  {
    std::mt19937 rng( ref.size() );
    for ( int t = 0; t < 20; ++t )
    {
      const size_t a = rng() % ref.size();
      const size_t b = rng() % ref.size();
      CHECK( *( bv.begin() + a ) == ref[ a ] );
      CHECK( ( bv.begin() + b ) - ( bv.begin() + a ) == static_cast< long >( b ) - static_cast< long >( a ) );
    }
  }
}

int
main()
{
  std::mt19937 rng( 12345 );
  // sizes around the first block's doublings and the block size
  const std::vector< size_t > sizes = { 0, 1, 7, 8, 9, 15, 16, 17, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 5000 };
  for ( size_t n : sizes )
  {
    BlockVector< long > bv;
    std::vector< long > ref;
    for ( size_t k = 0; k < n; ++k )
    {
      const long v = static_cast< long >( rng() % 100000 );
      if ( k % 2 )
      {
        bv.push_back( v );
      }
      else
      {
        long w = v;
        bv.push_back( std::move( w ) );
      }
      ref.push_back( v );
    }
    same( bv, ref );
    const BlockVector< long > copy( bv );
    same( copy, ref );
    // std::sort through the iterators
    BlockVector< long > sorted( bv );
    std::sort( sorted.begin(), sorted.end() );
    std::vector< long > ref_sorted( ref );
    std::sort( ref_sorted.begin(), ref_sorted.end() );
    same( sorted, ref_sorted );
    // erase a middle range, then the tail, then push more
    if ( n > 2 )
    {
      const size_t a = n / 3, b = 2 * n / 3;
      bv.erase( bv.begin() + a, bv.begin() + b );
      ref.erase( ref.begin() + a, ref.begin() + b );
      same( bv, ref );
      bv.erase( bv.begin() + ref.size() / 2, bv.end() );
      ref.erase( ref.begin() + ref.size() / 2, ref.end() );
      same( bv, ref );
      for ( size_t k = 0; k < n + 3; ++k )
      {
        bv.push_back( static_cast< long >( k ) );
        ref.push_back( static_cast< long >( k ) );
      }
      same( bv, ref );
    }
    bv.erase( bv.begin(), bv.end() );
    ref.clear();
    same( bv, ref );
    for ( size_t k = 0; k < n; ++k )
    {
      bv.push_back( -static_cast< long >( k ) );
      ref.push_back( -static_cast< long >( k ) );
    }
    same( bv, ref );
    bv.clear();
    ref.clear();
    same( bv, ref );
    bv.push_back( 42 );
    ref.push_back( 42 );
    same( bv, ref );
    // the sized constructor (n = 0 is not supported by NEST's BlockVector: ceil(0) - 1 underflows)
    if ( n > 0 )
    {
      BlockVector< long > sized( n );
      CHECK( sized.size() == n );
    }
  }
  // random mixed operations
  BlockVector< long > bv;
  std::vector< long > ref;
  for ( int step = 0; step < 20000; ++step )
  {
    const unsigned op = rng() % 100;
    if ( op < 90 )
    {
      bv.push_back( step );
      ref.push_back( step );
    }
    else if ( op < 98 and ref.size() > 1 )
    {
      size_t a = rng() % ref.size(), b = rng() % ref.size();
      if ( a > b )
        std::swap( a, b );
      bv.erase( bv.begin() + a, bv.begin() + b );
      ref.erase( ref.begin() + a, ref.begin() + b );
    }
    else
    {
      bv.clear();
      ref.clear();
    }
    if ( step % 97 == 0 )
      same( bv, ref );
  }
  same( bv, ref );
  if ( failures )
  {
    std::fprintf( stderr, "BlockVector check: %d failures\n", failures );
    return 1;
  }
  std::printf( "BlockVector check: ok\n" );
  return 0;
}
